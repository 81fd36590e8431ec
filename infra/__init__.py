"""Infrastructure the apps share: plain-SQL rows, the database thread pool, the
channel layers. It imports nothing of the project's own."""
