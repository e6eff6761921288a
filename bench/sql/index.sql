-- The primary key and the index on the clock column, built after the load.
ALTER TABLE :tbl ADD PRIMARY KEY (id);
CREATE INDEX ON :tbl (created_at);
