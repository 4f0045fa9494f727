"""The bench's shared parts; the modes are in ../modes, the matrix's rows in ../rows."""
