"""Who is calling and what they may do: users, passwords, permissions, registry tokens."""
