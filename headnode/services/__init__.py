"""The head node's services: queue, allocator, membership, output, journal, events."""
