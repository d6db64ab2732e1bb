"""Inference: images in, faces detected and cropped, a recognizer classifying them, results drawn and
written; video files, explanations (Grad-CAM) and the live camera. The recognizer loads TensorFlow
when it loads a model."""
