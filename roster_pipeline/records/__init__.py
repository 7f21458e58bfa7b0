"""What a roster is made of and what is wrong with a record: the OneRoster resources the pipeline syncs
(catalogue), a rejected record (rejects), and values no warehouse can store (unstorable)."""
