"""`make bench`: each module here measures one stage next to its anchor on the same
input in the same run and returns a table. `python -m bench [names...]`."""
