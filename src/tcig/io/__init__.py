"""Files: atomic writes, safe output names, folder locks, resumable JSON lines, output files and pictures."""
