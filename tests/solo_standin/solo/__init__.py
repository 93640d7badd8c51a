"""Stand-in of solo-learn (see ../README.md)."""
