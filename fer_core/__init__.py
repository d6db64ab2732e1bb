"""Facial-expression recognition on FER2013: data, training, inference and the app's logic."""

from fer_core.native_libs import guard_native_libraries

guard_native_libraries()
