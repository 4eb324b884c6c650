"""Files the plugin keeps: the artifact cache, atomic writes, owners and work folders."""
