"""The session's workspace folder: file access confined to it, with no way out."""
