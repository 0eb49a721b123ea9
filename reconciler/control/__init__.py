"""The declarative path: observe what exists, plan (the pure planner), apply, record."""
