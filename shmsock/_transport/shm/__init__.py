"""``shm://NAME``: rings in POSIX shared memory between processes of one host."""
