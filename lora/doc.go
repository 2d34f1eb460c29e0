// Package lora will hold LoRA for Linear, Conv2d and Conv3d layers:
// injection by module-name suffix, scale alpha/r, merge and exact unmerge,
// and the peft file layout (adapter_model.safetensors, adapter_config.json).
package lora
