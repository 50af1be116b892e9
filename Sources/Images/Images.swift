import CImageCodecs

/// Image decoding (JPEG, PNG) and CLIP preprocessing.
public enum Images {}
