"""The safety scenario library: `library.py` holds the scenarios, `test_safety.py` collects
them as pytest tests (`pytest --pyargs hil.scenarios --rig FILE`, or `stimctl hil run`)."""
