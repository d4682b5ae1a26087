"""Where and how models run: the CPU allocator setting, devices and precision."""
