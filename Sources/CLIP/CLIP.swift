import Tensor

/// The CLIP model family: tokenizer, text and vision towers, Hugging Face checkpoint loading.
public enum CLIP {}
