"""Networks and distributions: layers, dists, and the RSSM."""
