-- QAT of the shipped ResNet-18 (INT8): FP32 vs PTQ vs QAT on the 10,000-image
-- test set; saves data/models/resnet18_fmnist_qat_int8.qlm when the QAT drop
-- is under 0.2 points.
--   ./qlab --script scripts/qat_resnet18.lua [--epochs N] [--batches N] [--quick]
local qlab = require "qlab"
local recipe = require "qlab.qat_recipe"
recipe.run(recipe.args{
  model = "resnet18", ptq_qconfig = qlab.qconfig.default(), qat_qconfig = qlab.qconfig.default_qat(),
  epochs = 2, lr = 1e-3, freeze_bn_after = 1, freeze_observers_after = 1, target_drop = 0.2,
  save = "data/models/resnet18_fmnist_qat_int8.qlm"})
