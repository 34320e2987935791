"""The door screen: what the person at the kiosk sees (a local page for `chromium --kiosk`).

The service updates a ScreenState; ScreenServer serves it on 127.0.0.1 as one full-screen page
that polls /state.json every 500 ms. No external assets, no names kept beyond a short history.
"""

from kiosk.screen.server import ScreenServer
from kiosk.screen.state import Message, ScreenState, display_name, greeting_word, message_for

__all__ = ["Message", "ScreenServer", "ScreenState", "display_name", "greeting_word", "message_for"]
