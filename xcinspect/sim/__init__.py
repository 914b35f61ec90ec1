"""A simulated Xen world: separate processes sharing console page files with the real layout.

* ``world``     -- the controller (``python -m xcinspect.sim.world``, ``xcinspect sim DIR``);
  beside it ``world_control`` (its control socket), ``world_processes`` (its children),
  ``toolstack`` (what xl/libxl write for a domain), ``scenarios`` (domains, timeline).
  The Python API is ``handle``: ``start_world(dir, domains=None, scenario="demo",
  timeline=True) -> World``.
* ``xenstored`` -- a xenstored on a unix socket speaking the real wire protocol (pyxs and
  xcinspect's own client work unchanged; DIRECTORY_PART for long listings), with fault
  injection through XS_CONTROL (stall, stall-mid, drop); what each request does is
  ``xenstore_requests``, on the tree of ``xenstore_tree``, with ``xenstore_watches``.
* ``consoled``  -- a xenconsoled: domain discovery by watches, page mapping, the flag per
  layout, event channel binding, a pty per console, the 30-events-per-200-ms rate limit;
  one console and its service is ``console``.
* ``guest``     -- guests (sharded many per process at scale): boot logs, kernel models
  (legacy, rfc-v2, xen-4.21), behaviours (normal, quiet, chatty, corrupt), a tiny shell.
* ``evtchn``    -- event channels as Linux abstract unix datagram sockets.
* ``common``    -- the world directory layout (a contract) and world.json helpers.
* ``xswire``    -- a small pipelining xenstore client (bulk population, raw tests).
* ``stress``    -- the cross-process ring stress (guest half and backend half).

The platform for a world directory is ``xcinspect.sim.platform.SimPlatform``.
"""
