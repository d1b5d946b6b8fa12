# Cluster execution: which rules run on the submit host (they need the Docker Engine).
