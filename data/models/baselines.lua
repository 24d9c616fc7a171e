{
  lstm = {epochs = 12, loss = 0.29824181497097013, params = 82186, seconds_per_epoch = 262.34935075158336, size_bytes = 328744, threads = 2, top1 = 89.189999999999998, top1_subset2000 = 88.849999999999994, wall_seconds = 3255.0197814090006},
  small_cnn = {epochs = 10, loss = 0.28745443969964979, params = 28218, seconds_per_epoch = 30.18467266, size_bytes = 113768, threads = 2, top1 = 89.540000000000006, top1_subset2000 = 90.299999999999997, wall_seconds = 321.41536995400008},
}
