"""The catalogue: applications, credential prototypes and credentials, their import and export."""
