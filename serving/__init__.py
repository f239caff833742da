"""The Ray Serve application that serves Llama per sovereign cluster, guarded per request by the policy.

`serving.app:build_app` is the one import path a RayService's serveConfigV2 names; `serving.dataplane`
runs those configs on a local Ray when there is no KubeRay (`sovereign serve`).
"""
