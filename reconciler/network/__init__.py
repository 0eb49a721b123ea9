"""Container networking: IPAM, bridges and veths (pyroute2), published ports (nftables), and the embedded DNS."""
