-- QAT where it matters: MobileNetV2 with 4-bit per-channel weights and 8-bit
-- activations (W4A8). FP32 vs PTQ W4A8 vs QAT W4A8; saves
-- data/models/mobilenet_v2_fmnist_qat_w4a8.qlm when QAT is within 0.3 points of FP32.
--   ./qlab --script scripts/qat_w4a8.lua [--epochs N] [--batches N] [--quick]
local qlab = require "qlab"
local recipe = require "qlab.qat_recipe"
recipe.run(recipe.args{
  model = "mobilenet_v2", ptq_qconfig = qlab.qconfig.w4a8(), qat_qconfig = qlab.qconfig.w4a8_qat(),
  epochs = 3, batches = 352, lr = 1e-3, freeze_bn_after = 2, freeze_observers_after = 2, target_drop = 0.3,
  save = "data/models/mobilenet_v2_fmnist_qat_w4a8.qlm"})
