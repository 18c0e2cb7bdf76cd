// The Go sample of SWR's "Creating an Automatic Image Synchronization Task" page
// (CreateImageSyncRepo), as the page shows it. Changed only where it must be:
//   - the "os" import the page leaves out is added;
//   - the project id and the request's values come from the environment instead of
//     "{project_id}", "{namespace}", "{repository}" and "string";
//   - region.ValueOf("cn-north-4") is kept: the SDK's own region override,
//     HUAWEICLOUD_SDK_REGION_SWR_CN_NORTH_4=<endpoint>, points it at Ferry.
package main

import (
	"fmt"
	"os"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
    swr "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/swr/v2"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/swr/v2/model"
    region "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/swr/v2/region"
)

func main() {
    // The AK and SK used for authentication are hard-coded or stored in plaintext, which has great security risks. It is recommended that the AK and SK be stored in ciphertext in configuration files or environment variables and decrypted during use to ensure security.
    // In this example, AK and SK are stored in environment variables for authentication. Before running this example, set environment variables CLOUD_SDK_AK and CLOUD_SDK_SK in the local environment
    ak := os.Getenv("CLOUD_SDK_AK")
    sk := os.Getenv("CLOUD_SDK_SK")
    projectId := os.Getenv("CLOUD_SDK_PROJECT_ID")

    auth := basic.NewCredentialsBuilder().
        WithAk(ak).
        WithSk(sk).
        WithProjectId(projectId).
        Build()

    client := swr.NewSwrClient(
        swr.SwrClientBuilder().
            WithRegion(region.ValueOf("cn-north-4")).
            WithCredential(auth).
            Build())

    request := &model.CreateImageSyncRepoRequest{}
	request.Namespace = os.Getenv("SWR_NAMESPACE")
	request.Repository = os.Getenv("SWR_REPOSITORY")
	overrideCreateImageSyncRepoRequestBody:= true
	syncAutoCreateImageSyncRepoRequestBody:= true
	request.Body = &model.CreateImageSyncRepoRequestBody{
		Override: &overrideCreateImageSyncRepoRequestBody,
		SyncAuto: &syncAutoCreateImageSyncRepoRequestBody,
		RemoteNamespace: os.Getenv("SWR_REMOTE_NAMESPACE"),
		RemoteRegionId: os.Getenv("SWR_REMOTE_REGION_ID"),
	}
	response, err := client.CreateImageSyncRepo(request)
	if err == nil {
        fmt.Printf("%+v\n", response)
    } else {
        fmt.Println(err)
    }
}
