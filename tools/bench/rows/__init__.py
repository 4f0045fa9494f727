"""The matrix's rows, one file per kind. Each file has `rows(s)` (its Scenarios, `s` being
the matrix's settings), `figures(s)` (its lines of the "Bulk and memory" table) and
`targets(s, results, label)` (its lines of the Targets table); modes/matrix.py lists the files."""
