{
  lstm = {epochs = 12, loss = 0.29824181497097013, params = 82186, seconds_per_epoch = 262.34935075158336, size_bytes = 328744, threads = 2, top1 = 89.189999999999998, top1_subset2000 = 88.849999999999994, wall_seconds = 3255.0197814090006},
  mobilenet_v2 = {epochs = 6, loss = 0.20299659967422484, params = 2236106, seconds_per_epoch = 358.97750154733359, size_bytes = 9080872, threads = 1, top1 = 92.430000000000007, top1_subset2000 = 92.849999999999994, wall_seconds = 2266.6214073249994},
  resnet18 = {epochs = 11, loss = 0.21224405318498613, params = 11175370, seconds_per_epoch = 289.82878767827276, size_bytes = 44739880, threads = 2, top1 = 92.269999999999996, top1_subset2000 = 92.349999999999994, wall_seconds = 3299.9303359739997},
  small_cnn = {epochs = 10, loss = 0.28745443969964979, params = 28218, seconds_per_epoch = 30.18467266, size_bytes = 113768, threads = 2, top1 = 89.540000000000006, top1_subset2000 = 90.299999999999997, wall_seconds = 321.41536995400008},
}
