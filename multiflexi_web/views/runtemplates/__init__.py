"""RunTemplate pages: list, detail, the wizard and edit form, Run now."""
