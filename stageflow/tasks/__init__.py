"""Built-in tasks that need more than the engine has: each module registers its tasks with
`stageflow.engine.task` and is loaded through the `stageflow.tasks` entry-point group, like a
user's task module. The engine itself imports nothing from here."""
