"""signalwatch: an event-streaming monitor of conflict news."""
__version__ = "0.1.0"
