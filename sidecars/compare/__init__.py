"""The comparator: a shadow against its primary on the same requests, a canary against its
primary over the window both were live, column by column, each with a verdict."""
