"""The demo's steps, a module each, each a function of the shared `DemoContext`; `runner` orders them."""
