"""The lowest layer: atomic writes and readers of text files and tables, with errors that name the file and line."""
