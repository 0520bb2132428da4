"""Reward files for other training stacks, named by path in their configs.

- :mod:`reward_server.integrations.openrlhf`: ``--remote_rm_url /path/to/openrlhf.py`` (``reward_func``).
- :mod:`reward_server.integrations.verl`: ``custom_reward_function.path`` (``compute_score``,
  ``compute_score_async``, ``compute_score_batch``).

Both score through the reward server(s) in ``RRG_REWARD_URLS`` (key ``RRG_REWARD_API_KEY``), or in-process
when ``RRG_REWARD_MODEL_DIR`` is set (:mod:`reward_server.env`), with one client or scorer per process
(:func:`reward_server.integrations.scoring.shared`).
"""
