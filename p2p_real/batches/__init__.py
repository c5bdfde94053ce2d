"""Many edits at once, and the plan of one photo's work: the checks before any model loads (preflight), the plan that
says what will be done and written (photo_plan), batch recipes and their jobs."""
