"""A reply's way from Claude to every browser watching it.

- `runner`: one task per reply: reads Claude's stream, checkpoints, finalises
  the message and its ledger row, publishes the end.
- `publisher`: numbered frames (coalesced deltas) recorded then published;
  broadcasts about stored rows, sent by services after commit.
- `replay`: the record of a reply's frames (memory, or a Redis stream per reply).
- `delivery`: one socket's sending, in seq order, once, with catch-up from the
  record: the one rule for ordering is in its docstring.
- `frames`: one builder per server frame type.

The channel layers themselves are infrastructure (`infra.channel_layers`).
"""
