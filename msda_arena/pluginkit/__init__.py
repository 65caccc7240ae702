"""For plugin authors: the conformance rules of ``arena check`` and the helpers a plugin's
own tests import (:mod:`~msda_arena.pluginkit.conformance`, also importable as
``msda_arena.testing``), and ``arena new-plugin`` (:mod:`~msda_arena.pluginkit.scaffold`)."""
