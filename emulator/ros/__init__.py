"""The ROS stand-in, laid out as moto lays out a service: :mod:`~emulator.ros.models` (stacks, resources, events,
requests and answers), :mod:`~emulator.ros.templates` (parsing and evaluating templates, no HTTP),
:mod:`~emulator.ros.answers` (the requests sent to the provider and the answers taken on their ResponseURLs),
:mod:`~emulator.ros.stacks` (stack operations on the virtual clock), :mod:`~emulator.ros.api` (the ROS 2019-09-10
API's handlers over the shared envelope of :mod:`emulator.rpc`) and :mod:`~emulator.ros.standin` (all of it on one
endpoint)."""

from emulator.ros.api import RosApi
from emulator.ros.models import Answer, ParameterError, Pending, Stack, StackStateError, TemplateError
from emulator.ros.standin import RosStandIn
from emulator.ros.templates import load_template, parse_template

__all__ = [
    "Answer",
    "ParameterError",
    "Pending",
    "RosApi",
    "RosStandIn",
    "Stack",
    "StackStateError",
    "TemplateError",
    "load_template",
    "parse_template",
]
