"""Java models through JPype: meshserve's Java interface (sources in src/) or legacy code called as it is."""
