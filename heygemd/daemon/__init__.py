"""The heygemd service: watches an inbox of job folders and feeds them, one at a time, to a warm engine.

It knows nothing of tensors: everything it asks of the engine goes through ``heygemd.engine``'s
public interface (``LipSyncEngine``, ``EngineSettings``, ``RenderOptions`` and the errors).
"""
