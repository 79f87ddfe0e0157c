"""Every `socialpulse` command, one module each; `options.py` holds the flags they share."""
