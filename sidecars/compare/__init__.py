"""The comparator: a shadow against its primary on the same requests, a canary against its
primary as distributions over the same window."""
