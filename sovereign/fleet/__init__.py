"""The fleet: every region's control plane and Prometheus, named in one fleet file; what runs there, and
what a new policy would change there before it is published."""
