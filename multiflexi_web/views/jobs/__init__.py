"""Job pages: the live list, the detail page with live output, artifacts; their read models."""
