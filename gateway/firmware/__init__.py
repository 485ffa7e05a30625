"""The in-store hardware as validated files: layouts, beacon profiles, broker and gateway configs."""
