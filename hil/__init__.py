"""Hardware-in-the-loop rig layer: rig configuration, pytest plugin, safety scenarios, reports."""
