"""The main job, locally: three sovereign regions brought up end to end on real parts."""
