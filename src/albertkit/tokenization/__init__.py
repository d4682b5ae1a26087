"""Tokenizers: SentencePiece (ALBERT's own), `tokenizers`' tokenizer.json, and BERT's WordPiece vocab.txt."""
