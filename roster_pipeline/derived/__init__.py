"""Tables derived from a district's published roster: ``class_teachers`` and ``student_logins``.

The rules (teacher order, who is primary, how a student signs in) are plain Python here, so SQLite and
Postgres give byte-identical tables whatever their collations; the SQL that reads published rows and
writes the derived ones lives in ``roster_pipeline.warehouse.derived``; ``build`` joins the two.
"""
