"""tuning stage of mathmatch."""
