"""Files in chat: the upload pipeline beside the `Attachment` model.

- `uploads`: the upload request's side. Cleans the name, checks the size and
  the person's quota, streams the bytes to the attachments storage under a
  random name, creates the row as checking and enqueues the check after commit.
- `upload_gate`: the ASGI middleware in front of Django that refuses an upload
  from its headers (signed out, no length, past the limit) before its body is
  read, and cuts a body that passes the limit while it streams.
- `checks`: pure functions over bytes on disk (no models): the real type from
  the bytes, the limits, the prepared file and thumbnail.
- `pipeline`: the worker's side. `attachment_check` (idempotent; a deleted
  attachment is a no-op), the sweep of checks whose worker died, the removal of
  uploads never sent and of the files of deleted rows.
- `blocks`: what a send does with attachments: which ids a message may carry,
  the request's limits (32 MB, 100 PDF pages), and the API blocks Claude gets.

Every change of state reaches the conversation's sockets as one
`attachment.updated` frame (`conversations.streaming.frames`), sent after
commit.
"""
