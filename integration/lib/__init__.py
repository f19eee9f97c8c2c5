"""hnxdp's integration-test library: the namespace rig, the hnxdp runner,
traffic tools and waiting, for the pytest suite in this directory."""
